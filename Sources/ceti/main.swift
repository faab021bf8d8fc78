import CetiKit
print(Ceti.version)
