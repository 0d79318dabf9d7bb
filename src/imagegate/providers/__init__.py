"""Image providers behind one Protocol (``base.Provider``)."""
