"""The model the verbs share: lines, bases, the series, the applied tree.

tools/README.md draws its layers."""
