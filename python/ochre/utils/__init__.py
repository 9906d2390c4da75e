"""chromadb's `utils` paths, for `import ochre as chromadb` code."""
