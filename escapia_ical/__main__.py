from escapia_ical.cli import main

main()
