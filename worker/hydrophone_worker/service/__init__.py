"""The worker service: the run loop joining source, clips, detector and publishers, and its HTTP face."""
