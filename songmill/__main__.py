from songmill.cli import main

main()
