"""Follow-up arithmetic: mean diameters, growth, volume doubling time and RECIST 1.1 response."""
