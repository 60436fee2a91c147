from songmill.engine.cli import main

main()
