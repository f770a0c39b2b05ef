"""The gradient-based search strategy's compute side (the PV-NAS family): the search space derived from a
base network (``space``), the weight-sharing supernet (``supernet``), the exact cost table (``cost``) and the
supernet training job (``search``)."""
