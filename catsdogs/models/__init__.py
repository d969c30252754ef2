"""The networks and their files: the scratch recipes, VGG16, layers, precision policy, safe model loading."""
