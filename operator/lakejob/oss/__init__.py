"""lakejob-oss: the program in the operator's image that moves a DagJob command task's files
between OSS and its pod, as BatchCompute does around a command.

- `lakejob-oss fetch` (init container `fetch`): PackagePath unpacked into the working
  directory, InputMapping and Mounts entries copied to their local paths;
- `lakejob-oss upload` (native sidecar `upload`): echoes the command's stdout/stderr while it
  runs, and on SIGTERM (the command has ended) uploads them under BatchCompute's names, with
  OutputMapping and LogMapping.

render.dag puts both containers into the task's pod. Modules: `paths` (pure: oss:// paths, object
keys, BatchCompute's names, archive and path safety), `client` (the S3 API edge: configuration
from the environment, boto3), `fetch`, `upload`, `cli` (argparse, the console script).
Alibaba OSS speaks the S3 API, so any S3-compatible store works (the tests use moto's server).
"""
