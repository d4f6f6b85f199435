"""Monitoring: captured traffic, drift, quality from ground truth and new-data volume, published to CloudWatch."""
