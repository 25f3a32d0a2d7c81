from synap_play.cli import main

main()
