"""Looking inside models: what their layers compute on real inputs."""
