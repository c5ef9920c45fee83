"""Command-line front ends: argument parsing kept apart from the engine so the options mirror the node's inputs."""
