"""Request and response schemas, the Scorer, the BentoML service and the decision log."""
