"""REST client for the DataRobot API (configuration, retries, streamed uploads)."""
