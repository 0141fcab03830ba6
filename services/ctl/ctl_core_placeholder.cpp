// placeholder until the formatting code lands
