"""The explorer: schedule search (random walk, PCT), shrinking, classification against the
known races, LKML-style race diagrams, replay files and the leak matrix."""
