"""Live teaching: the program compositor (its own process), the LL-HLS packager and playlists."""
