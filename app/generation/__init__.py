"""Generation: the flow every paid request follows (start → execute → settle), one module per kind
in kinds/, the queries that list and show generations, and the usage they leave."""
