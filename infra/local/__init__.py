"""The local cloud: the Pulumi program deployed into moto, and the AWS behaviours moto lacks."""
