from check_fastcgi.cli import main

main()
