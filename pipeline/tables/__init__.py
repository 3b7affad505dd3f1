"""Table competitions: validated frames, the generic feature encoder, and the Titanic and House Prices builders."""
