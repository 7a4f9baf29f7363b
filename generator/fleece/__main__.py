from fleece.cli import main

main()
