"""The model the verbs share; tools/README.md draws its layers."""
