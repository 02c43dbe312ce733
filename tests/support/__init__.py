"""Test support: synthetic clips, a real RTSP server and pytest fixtures."""
