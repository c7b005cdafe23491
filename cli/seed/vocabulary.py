"""The words the seed builds its catalogue, customers and reviews from."""

from __future__ import annotations

# A two-level taxonomy: (parent, [children]).
TAXONOMY: list[tuple[str, list[str]]] = [
    ("Electronics", ["Headphones", "Speakers", "Cameras", "Phone Accessories", "Cables"]),
    ("Home", ["Lighting", "Kitchen", "Bedding", "Decor"]),
    ("Outdoors", ["Camping", "Cycling", "Garden"]),
    ("Clothing", ["Jackets", "Shoes", "Hats", "Bags"]),
    ("Office", ["Desks", "Chairs", "Stationery"]),
]
NOUNS = {
    "Headphones": ["Headphones", "Earbuds", "Headset"],
    "Speakers": ["Speaker", "Soundbar", "Subwoofer"],
    "Cameras": ["Camera", "Action Cam", "Lens"],
    "Phone Accessories": ["Phone Case", "Charger", "Power Bank"],
    "Cables": ["USB-C Cable", "HDMI Cable", "Lightning Cable"],
    "Lighting": ["Desk Lamp", "Floor Lamp", "LED Strip"],
    "Kitchen": ["Kettle", "Chef Knife", "Coffee Grinder"],
    "Bedding": ["Duvet", "Pillow", "Sheet Set"],
    "Decor": ["Vase", "Wall Clock", "Picture Frame"],
    "Camping": ["Tent", "Sleeping Bag", "Camp Stove"],
    "Cycling": ["Bike Light", "Helmet", "Bike Lock"],
    "Garden": ["Hose", "Pruner", "Planter"],
    "Jackets": ["Rain Jacket", "Down Jacket", "Fleece"],
    "Shoes": ["Running Shoes", "Boots", "Sneakers"],
    "Hats": ["Beanie", "Cap", "Sun Hat"],
    "Bags": ["Backpack", "Tote Bag", "Duffel"],
    "Desks": ["Standing Desk", "Desk Mat", "Monitor Stand"],
    "Chairs": ["Office Chair", "Stool", "Footrest"],
    "Stationery": ["Notebook", "Fountain Pen", "Planner"],
}
ADJECTIVES = [
    "Wireless",
    "Compact",
    "Premium",
    "Classic",
    "Ultralight",
    "Rugged",
    "Smart",
    "Eco",
    "Pro",
    "Vintage",
    "Foldable",
    "Waterproof",
    "Ergonomic",
    "Silent",
    "Heavy-Duty",
    "Mini",
]
MATERIALS = ["Bamboo", "Steel", "Oak", "Linen", "Carbon", "Wool", "Ceramic", "Aluminium", "Cotton"]
COLOURS = ["Black", "White", "Sage", "Navy", "Sand", "Graphite", "Coral", "Olive"]
FEATURES = [
    "built to last for years of daily use",
    "designed with a minimal footprint",
    "tested in demanding conditions",
    "made from responsibly sourced materials",
    "easy to clean and maintain",
    "backed by a two-year warranty",
    "quiet, efficient and energy-saving",
    "a favourite of our customers",
]
FIRST = [
    "Ada",
    "Grace",
    "Alan",
    "Linus",
    "Margaret",
    "Ken",
    "Barbara",
    "Dennis",
    "Frances",
    "Edsger",
    "Radia",
    "Tim",
    "Katherine",
    "John",
    "Hedy",
    "Guido",
]
LAST = [
    "Lovelace",
    "Hopper",
    "Turing",
    "Torvalds",
    "Hamilton",
    "Thompson",
    "Liskov",
    "Ritchie",
    "Allen",
    "Dijkstra",
    "Perlman",
    "Berners-Lee",
    "Johnson",
    "Backus",
]
# (city, state, postcode, country)
CITIES: list[tuple[str, str | None, str, str]] = [
    ("Boston", "MA", "02101", "US"),
    ("Austin", "TX", "73301", "US"),
    ("Toronto", "ON", "M5H 2N2", "CA"),
    ("London", None, "SW1A 1AA", "GB"),
    ("Berlin", None, "10115", "DE"),
    ("Lyon", None, "69001", "FR"),
]
REVIEW_TITLES = {
    1: ["Disappointed", "Broke quickly"],
    2: ["Not great", "Expected more"],
    3: ["It's fine", "Does the job"],
    4: ["Very good", "Happy with it"],
    5: ["Excellent", "Love it", "Best purchase this year"],
}
