"""The SRKW detector: upstream-exact frontend, ResNet-50 network, model directories, aggregation."""
