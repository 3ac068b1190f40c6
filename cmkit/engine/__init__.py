"""Building and running bundles: Docker images and containers, or local processes.

Which of the two (the runtime) is `choice.choose_runtime`'s rule, the one every command applies.
"""
