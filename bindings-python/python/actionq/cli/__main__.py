from actionq.cli.main import main

main()
