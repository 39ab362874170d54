"""cdigen: CDI specs for GPUs together with the RDMA NICs wired to them."""

__version__ = "0.1.0"
