"""Server-rendered pages: templates, UI text in Korean and English, view helpers."""
