"""What runs on an operator's machine: the ``mlops`` command and the tools it dispatches to.

``cli`` is the dispatcher; ``console`` draws a deployed stack (``mlops status``,
``mlops dashboard``); ``verify`` checks a live stack against what it declared; ``cost``
prices a stack's config. This is the top floor with ``localcloud``: it imports ``infra``,
``pipelines`` and ``model_code``, and nothing below imports it.
"""
