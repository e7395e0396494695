print("unrace")
