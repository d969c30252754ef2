"""catsdogs: the stages of the Dogs vs. Cats DVC pipeline (one module per stage)."""
