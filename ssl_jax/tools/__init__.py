"""Tools around training: Keras conversion and references, the bAbI CLI."""
