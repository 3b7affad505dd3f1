"""Getting a competition's files: sources (zip, folder, notebook, Kaggle API), CSV rules, description."""
