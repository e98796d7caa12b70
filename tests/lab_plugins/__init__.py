"""A lab's plug-ins, outside the ssl_jax package: a pretext task, a backbone
and a dataset, each one module, named by import path in a config
(`lab_plugins.context`, `lab_plugins.tiny_net`, `lab_plugins.blobs`). The
tests put tests/ on PYTHONPATH, as a lab would install its package."""
