"""Helpers shared by every test area (one copy of each): polling with a deadline, numpy spectrograms."""
