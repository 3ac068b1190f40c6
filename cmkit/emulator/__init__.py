"""`cmkit emulator`: a local stand-in for DataRobot's custom-models REST API.

Modules: `app` (Flask routes), `service` (the emulator as a library), `models`, `environments`,
`testing`, `datasets` (resources), `store` (SQLite + blobs), `jobs` (background work and the
job engines of the Docker and process runtimes), `faults` (fault injection, request journal), `validation` and
`reference` (the seed's schemas), `server` (waitress and signals).
"""
