[
  import_deps: [:phoenix],
  inputs: ["*.{ex,exs}", "{config,lib}/**/*.{ex,exs}"]
]
