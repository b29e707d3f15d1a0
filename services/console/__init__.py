"""The Aviso console: the web app for the people in the story (owns no domain data)."""
