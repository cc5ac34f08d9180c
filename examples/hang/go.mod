module goat.example/hang

go 1.19
