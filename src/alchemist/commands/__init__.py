"""One module per `alchemist <command>`: HELP, add_arguments(parser), run(args) -> exit code."""
