"""The vendors' REST APIs (DLI, Livy, BatchCompute) served over lakejob's custom resources."""
