// placeholder until the build runner lands
