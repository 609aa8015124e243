"""Generate the labelled MO-matching set: `python -m bench.mo_matching_data` writes
bench/data/mo_matching.json (committed; regenerate after changing this file).

Twenty MOs of a marketplace's fraud program, each as an analyst would record it (name, summary,
signals, behaviours, entity types), and for each twelve requests as partner teams would file them:
a title and a description composed (with a fixed seed) from how the people who meet the pattern
describe it — support agents, payments, sellers, ML — mostly in their own words rather than the
MO's, so that lexical overlap is low and matching has to go by meaning. Each request is labelled
with the one MO it is about.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

OUT = Path(__file__).parent / "data" / "mo_matching.json"
SEED = 20261128
REQUESTS_PER_MO = 12

# name, summary, signals, behaviours, entity types; then how reporters describe it: openings
# (title-like) and details (description sentences).
MOS: list[dict[str, Any]] = [
    {
        "key": "gift_card_draining",
        "name": "Gift card draining",
        "summary": "Gift cards bought with stolen payment cards are redeemed or resold within "
        "minutes, before the chargeback arrives.",
        "signals": ["gift card redemption within minutes of purchase", "stolen card bin"],
        "behaviours": ["gift card resale", "rapid balance transfer"],
        "entity_types": ["gift card", "payment instrument"],
        "openings": [
            "Prepaid voucher balances emptied right after checkout",
            "Store credit codes spent seconds after being bought",
            "Digital voucher codes cashed out immediately after purchase",
            "Stored-value codes wiped before the customer can use them",
            "Newly purchased e-vouchers already at zero balance",
            "Voucher codes bought on compromised cards and spent instantly",
        ],
        "details": [
            "Customers report that the e-voucher they just paid for shows no balance left.",
            "The codes are consumed from a different account a few minutes after the order.",
            "Payments behind these orders later come back as disputed by the bank.",
            "We see the same redeeming accounts across many unrelated orders.",
            "Codes show up for sale on resale forums at a discount.",
        ],
    },
    {
        "key": "account_takeover_sim_swap",
        "name": "Account takeover via SIM swap",
        "summary": "Fraudsters port a victim's phone number to their own SIM, reset the password "
        "with the SMS code and change payout or shipping details.",
        "signals": ["password reset after sim change", "new device login"],
        "behaviours": ["payout detail change", "shipping address change"],
        "entity_types": ["customer account", "phone number"],
        "openings": [
            "Customers locked out after their mobile carrier moved their number",
            "Hijacked profiles after phone number porting",
            "Users lose access once their mobile line is transferred",
            "Login one-time codes intercepted through carrier transfer",
            "Profiles taken over right after a mobile line moved to a new chip",
            "Victims say their phone stopped working and then their profile was changed",
        ],
        "details": [
            "Right after the carrier change someone requests a one-time code and gets in.",
            "The bank details for withdrawals are replaced within the hour.",
            "Delivery addresses are edited to parcel lockers.",
            "The victims notice only when their phone loses signal.",
            "Support sees a burst of credential recovery requests from new handsets.",
        ],
    },
    {
        "key": "refund_abuse_empty_box",
        "name": "Refund abuse with empty box claims",
        "summary": "Buyers claim the parcel arrived empty or with missing items to get refunds "
        "while keeping the goods.",
        "signals": ["high refund rate per buyer", "item not in package claim"],
        "behaviours": ["repeated missing item claims", "return without item"],
        "entity_types": ["buyer account", "order"],
        "openings": [
            "Buyers keep saying the package came with nothing inside",
            "Sellers report shoppers getting money back for goods they kept",
            "Suspicious 'nothing in the parcel' complaints on electronics",
            "Same shoppers repeatedly report contents missing on delivery",
            "Money-back claims for parcels that weighed the right amount",
            "Customers returning boxes filled with rocks instead of the product",
        ],
        "details": [
            "Carrier weight at pickup matches the full product but the buyer says it was empty.",
            "A handful of shoppers account for most of these reimbursement requests.",
            "Sellers lose both the item and the money.",
            "The returned parcel contains a cheaper substitute or nothing.",
            "Claims spike on high-value phones and headphones.",
        ],
    },
    {
        "key": "coupon_abuse_ring",
        "name": "Coupon abuse ring",
        "summary": "Organised groups create accounts to redeem first-order promotions repeatedly.",
        "signals": ["coupon redemption burst", "shared device across new accounts"],
        "behaviours": ["new account farming", "promo stacking"],
        "entity_types": ["promotion", "customer account"],
        "openings": [
            "Welcome discount used hundreds of times by what looks like one person",
            "Newcomer offer budget exhausted in two days",
            "Many fresh sign-ups from one phone claiming the first purchase deal",
            "Introductory discount codes farmed by bulk registrations",
            "Marketing budget drained by throwaway profiles",
            "Same delivery flat receiving dozens of first-time-buyer discounts",
        ],
        "details": [
            "The registrations use sequential e-mail addresses.",
            "All of them ship to a few addresses and use the same handset.",
            "The campaign was meant for genuinely new shoppers.",
            "Each profile places exactly one discounted order and goes quiet.",
            "Marketing wants to know how much of the spend was wasted.",
        ],
    },
    {
        "key": "seller_triangulation",
        "name": "Seller triangulation fraud",
        "summary": "A fake seller lists goods, buys them from another retailer with stolen cards "
        "and ships them to the real buyer, keeping the marketplace payment.",
        "signals": ["shipments from third-party retailer", "stolen card purchases upstream"],
        "behaviours": ["dropshipping with stolen payment", "below market pricing"],
        "entity_types": ["seller account", "listing"],
        "openings": [
            "Merchant's orders arrive in another retailer's packaging",
            "Vendor selling far below cost and fulfilling from elsewhere",
            "Cardholders disputing purchases that were shipped to our customers",
            "Shop that never holds stock but ships everything",
            "Too-cheap listings fulfilled through outside web stores",
            "Buyers receive parcels with invoices from a different company",
        ],
        "details": [
            "External retailers tell us their sales to our addresses were paid with stolen cards.",
            "The merchant's prices are 40% below anyone else's.",
            "The packing slip names somebody else.",
            "Our buyer is happy; the real victim is the cardholder elsewhere.",
            "The vendor account is new and grew very quickly.",
        ],
    },
    {
        "key": "fake_reviews",
        "name": "Fake review farms",
        "summary": "Paid groups post five-star reviews for sellers and one-star reviews for "
        "competitors from coordinated accounts.",
        "signals": ["review bursts on new listings", "reviewer account clusters"],
        "behaviours": ["incentivised reviews", "competitor review bombing"],
        "entity_types": ["review", "listing"],
        "openings": [
            "Dozens of glowing ratings appear overnight on an unknown product",
            "Rival shops flooded with one-star comments",
            "Star ratings that look purchased",
            "Feedback written by the same group on many products",
            "Product rating jumped from nothing to perfect in a day",
            "Customers offered money for positive feedback",
        ],
        "details": [
            "The comments reuse the same phrases word for word.",
            "The authors never bought the item.",
            "A message group advertises paid testimonials.",
            "Competitors' scores dropped after a wave of angry posts.",
            "Ranking of the product jumped to the first page.",
        ],
    },
    {
        "key": "counterfeit_goods",
        "name": "Counterfeit branded goods",
        "summary": "Sellers list counterfeit luxury and branded items as genuine, often with "
        "stolen product photos.",
        "signals": ["brand owner complaints", "stock photos reused across sellers"],
        "behaviours": ["selling replicas as authentic"],
        "entity_types": ["listing", "seller account"],
        "openings": [
            "Designer handbags that turn out to be fakes",
            "Brand owner says the watches on our site are knock-offs",
            "Replica sneakers sold as the real thing",
            "Imitation perfume sold under a famous label",
            "Buyers say the luxury item is not authentic",
            "Rights holder complaints about copied products",
        ],
        "details": [
            "The serial numbers don't exist in the manufacturer's records.",
            "The photos were copied from the official store.",
            "Prices are a fraction of retail.",
            "Stitching and packaging quality is poor.",
            "Legal is asking what we do to stop it.",
        ],
    },
    {
        "key": "card_testing",
        "name": "Card testing",
        "summary": "Bots try many stolen card numbers with tiny purchases to find the ones that "
        "still work.",
        "signals": ["many declined authorisations", "small value orders"],
        "behaviours": ["automated checkout attempts", "bin enumeration"],
        "entity_types": ["payment instrument", "checkout session"],
        "openings": [
            "Thousands of one-dollar orders failing at payment",
            "Scripted checkouts cycling through card numbers",
            "Spike in bank declines on tiny purchases",
            "Bots probing which credit cards are live",
            "Authorization failures exploding overnight",
            "Micro transactions used to validate cards",
        ],
        "details": [
            "The attempts come from a small set of IP ranges.",
            "Each session tries a different number with the same expiry.",
            "The issuer is complaining about our decline ratio.",
            "Successful ones are followed by large orders elsewhere.",
            "Payment processing fees went up sharply.",
        ],
    },
    {
        "key": "affiliate_cookie_stuffing",
        "name": "Affiliate cookie stuffing",
        "summary": "Affiliates drop tracking cookies without a real referral to claim "
        "commissions on sales they did not drive.",
        "signals": ["referral without click", "commission on organic sales"],
        "behaviours": ["hidden iframe referrals"],
        "entity_types": ["affiliate partner", "referral"],
        "openings": [
            "Partner earning commission on sales it never referred",
            "Referral payouts on customers who came directly",
            "Tracking tags planted on visitors invisibly",
            "Publisher claims credit for organic traffic",
            "Affiliate fees ballooning without more visitors",
            "Hidden frames setting our referral identifier",
        ],
        "details": [
            "The conversions show no ad impression or visit before them.",
            "The partner's site loads our pages in a zero-size frame.",
            "Payouts to this publisher tripled this quarter.",
            "Marketing attribution disagrees with the partner's numbers.",
            "Customers never saw the partner's content.",
        ],
    },
    {
        "key": "reseller_bots",
        "name": "Reseller bots on limited drops",
        "summary": "Scalper bots buy up limited-edition releases in seconds to resell at a "
        "markup, using many accounts and addresses.",
        "signals": ["sub-second checkouts", "address jigging"],
        "behaviours": ["bulk buying limited items", "scalping"],
        "entity_types": ["customer account", "order"],
        "openings": [
            "Limited sneaker release sold out in two seconds",
            "Scalpers grabbing all the consoles at launch",
            "Collectors can't buy the special edition before it's gone",
            "Automated purchases of hyped products",
            "Launch stock bought by scripts and relisted at double price",
            "Variations of one address used to get around purchase limits",
        ],
        "details": [
            "The addresses differ only by an apartment suffix.",
            "Orders complete faster than a human could fill the form.",
            "The items appear on resale sites within the hour.",
            "Genuine fans are complaining on social media.",
            "The per-customer limit is bypassed with many profiles.",
        ],
    },
    {
        "key": "money_mule_payouts",
        "name": "Money mule seller payouts",
        "summary": "Seller accounts are used to launder stolen funds: fake sales paid with "
        "stolen cards, then fast payouts to mule bank accounts.",
        "signals": ["payout shortly after first sale", "bank account shared across sellers"],
        "behaviours": ["laundering through fake sales"],
        "entity_types": ["seller account", "bank account"],
        "openings": [
            "New merchants cashing out immediately after their first sales",
            "Same bank account receiving withdrawals for many shops",
            "Vendors with purchases but no shipments withdrawing funds",
            "Laundering suspicions on freshly opened stores",
            "Funds moved out of the platform within hours of orders",
            "Shops paid by buyers who later dispute everything",
        ],
        "details": [
            "The tracking numbers are invalid or reused.",
            "The receiving accounts belong to recruited individuals.",
            "Compliance asked for a report to the regulator.",
            "All payments are disputed a few weeks later.",
            "The stores sell generic items at round prices.",
        ],
    },
    {
        "key": "wardrobing_returns",
        "name": "Wardrobing returns",
        "summary": "Buyers purchase clothing or electronics, use them once for an event, and "
        "return them as unworn for a full refund.",
        "signals": ["returns after weekend", "worn item returns"],
        "behaviours": ["use and return"],
        "entity_types": ["buyer account", "return"],
        "openings": [
            "Evening dresses sent back after the party with makeup stains",
            "Cameras returned right after a holiday trip",
            "Customers wearing outfits once and sending them back",
            "Party outfits coming back used",
            "Goods used for one occasion then returned as new",
            "Tags reattached on clothes that were clearly worn",
        ],
        "details": [
            "The returned items smell of perfume or smoke.",
            "Returns cluster on Mondays after big events.",
            "Sellers can no longer sell the item as new.",
            "The same shoppers do this every month.",
            "Memory cards in returned cameras still hold photos.",
        ],
    },
    {
        "key": "phishing_seller_messages",
        "name": "Phishing through seller messages",
        "summary": "Fake sellers message buyers with links to look-alike login pages to steal "
        "credentials and payment details.",
        "signals": ["external links in messages", "look-alike domains"],
        "behaviours": ["credential phishing"],
        "entity_types": ["message", "seller account"],
        "openings": [
            "Shoppers receiving chat links to a fake sign-in page",
            "In-app conversations steering users to copycat websites",
            "Buyers asked to 'confirm their details' on another site",
            "Imitation login page shared in order conversations",
            "Customers lose their password after clicking a vendor's link",
            "Messages with lookalike web addresses",
        ],
        "details": [
            "The site copies our design exactly.",
            "After entering their details the victims' profiles are used to buy.",
            "The links use a misspelled version of our name.",
            "The messages say the order is on hold until they verify.",
            "Several stores send the same wording.",
        ],
    },
    {
        "key": "friendly_fraud_chargebacks",
        "name": "Friendly fraud chargebacks",
        "summary": "Genuine cardholders receive goods and then dispute the charge with their "
        "bank claiming they never authorised it.",
        "signals": ["chargeback after confirmed delivery", "repeat disputer"],
        "behaviours": ["disputing legitimate purchases"],
        "entity_types": ["buyer account", "payment dispute"],
        "openings": [
            "Customers tell their bank they didn't order what they received",
            "Disputes filed on parcels signed for at the door",
            "Shoppers contesting charges after using the product",
            "Card owners reversing payments on delivered goods",
            "Bank claims of 'unauthorised' on orders with proof of delivery",
            "Same people reversing several payments a year",
        ],
        "details": [
            "The delivery photo shows the buyer at their own door.",
            "The device and address match their previous good orders.",
            "We lose the goods and pay a fee for each case.",
            "The contested amount keeps growing every month.",
            "Support contacts from these buyers stopped after delivery.",
        ],
    },
    {
        "key": "inventory_hoarding",
        "name": "Inventory hoarding with unpaid orders",
        "summary": "Competitors place orders and never pay, to lock a rival's stock and "
        "push shoppers to their own listings.",
        "signals": ["unpaid orders on one listing", "cancelled after reservation window"],
        "behaviours": ["stock locking"],
        "entity_types": ["order", "listing"],
        "openings": [
            "Product shows out of stock but nobody is paying for it",
            "Reservations without payment blocking sales",
            "Someone keeps holding items in checkout until they expire",
            "Stock tied up by orders that never complete",
            "Seller's goods reserved repeatedly by the same few people",
            "Rival merchant suspected of blocking our inventory",
        ],
        "details": [
            "The holds expire after 48 hours and start again.",
            "The buyers are linked to a competing shop.",
            "The seller's sales dropped to zero during the promotion.",
            "Everything is reserved on the busiest days.",
            "The shoppers never complete a purchase.",
        ],
    },
    {
        "key": "synthetic_identity",
        "name": "Synthetic identity buy-now-pay-later",
        "summary": "Fabricated identities combining real and fake data open instalment credit "
        "lines, build a history, then max out and disappear.",
        "signals": ["thin credit file", "identity attribute mismatch"],
        "behaviours": ["bust-out after credit build-up"],
        "entity_types": ["credit line", "customer account"],
        "openings": [
            "Instalment plans taken by people who don't seem to exist",
            "Pay-later customers vanish after spending their limit",
            "Invented persons opening deferred payment plans",
            "Credit-building then one huge unpaid purchase",
            "Mixed real and made-up personal details on finance applications",
            "Deferred payment losses from profiles with no real owner",
        ],
        "details": [
            "The national id numbers belong to children or deceased people.",
            "Small purchases are repaid for months, then the limit is used at once.",
            "The collections team cannot reach anyone.",
            "The names and birth dates don't match the id numbers.",
            "Losses are concentrated in electronics.",
        ],
    },
    {
        "key": "shill_bidding",
        "name": "Shill bidding on auctions",
        "summary": "Sellers bid on their own auctions from secondary accounts to raise the "
        "final price.",
        "signals": ["bidder linked to seller", "bids only on one seller"],
        "behaviours": ["price inflation"],
        "entity_types": ["auction", "bidder account"],
        "openings": [
            "Auction prices pushed up by the seller's own friends",
            "Fake bidders inflating the winning price",
            "Suspicious offers on lots that always lose at the end",
            "Winners overpaying because of planted offers",
            "The same few people bid on only one vendor's lots",
            "Bidding wars that stop just below the top",
        ],
        "details": [
            "The bidders log in from the seller's network.",
            "They never win and never buy from anyone else.",
            "Buyers feel cheated once they see the pattern.",
            "The final price is consistently above market.",
            "The accounts were created the same day as the seller's.",
        ],
    },
    {
        "key": "loyalty_points_theft",
        "name": "Loyalty points theft",
        "summary": "Compromised accounts have their rewards points transferred or redeemed for "
        "goods shipped to the fraudster.",
        "signals": ["points redemption to new address", "points transfer between accounts"],
        "behaviours": ["rewards draining"],
        "entity_types": ["loyalty account", "customer account"],
        "openings": [
            "Members find their reward balance gone",
            "Bonus miles redeemed by strangers",
            "Points spent on products shipped to unknown addresses",
            "Frequent-shopper rewards emptied overnight",
            "Members complain their accumulated bonus was used",
            "Perks balance moved to other members",
        ],
        "details": [
            "The redemptions happen at night from foreign devices.",
            "Orders go to freight forwarders.",
            "Members only notice when they try to use the balance.",
            "The program has to restore the balance at our cost.",
            "The member's password was not changed first.",
        ],
    },
    {
        "key": "fake_listings_deposit",
        "name": "Fake listings collecting deposits",
        "summary": "Scam sellers list high-demand items they do not have, ask for a deposit or "
        "off-platform payment, and disappear.",
        "signals": ["off-platform payment requests", "listing price far below market"],
        "behaviours": ["advance fee scam"],
        "entity_types": ["listing", "seller account"],
        "openings": [
            "Buyers paid a down payment and the vendor vanished",
            "Shop asking for bank transfer outside our checkout",
            "Nonexistent products advertised to collect prepayments",
            "Customers wired money for a car that was never there",
            "Vendor requests partial payment by wire first",
            "Listings for puppies and apartments that don't exist",
        ],
        "details": [
            "The seller insists on paying by direct transfer to avoid fees.",
            "After the payment the account stops answering.",
            "Photos were taken from other ads.",
            "Our buyer protection doesn't cover off-platform payments.",
            "Many victims paid the same account.",
        ],
    },
    {
        "key": "employee_collusion",
        "name": "Insider collusion on refunds",
        "summary": "Support agents issue goodwill credits or refunds to accomplices' accounts "
        "in exchange for a cut.",
        "signals": ["agent refunds concentrated on few accounts", "manual credit overrides"],
        "behaviours": ["insider abuse"],
        "entity_types": ["support agent", "refund"],
        "openings": [
            "One support rep keeps granting goodwill money to the same customers",
            "Manual compensation payments to linked profiles",
            "Staff member suspected of paying out friends",
            "Unusual concession volume from a single agent",
            "Courtesy credits without any matching complaint",
            "Customer service overrides benefiting a small group",
        ],
        "details": [
            "The recipients share an address with the employee.",
            "The tickets have no customer message attached.",
            "The amounts sit just below the approval threshold.",
            "Other agents never issue credits to these customers.",
            "Audit flagged it in the quarterly review.",
        ],
    },
]


def generate(seed: int = SEED) -> dict[str, Any]:
    """The labelled set: MOs, and requests labelled with their MO's key."""
    rng = random.Random(seed)
    requests = []
    for mo in MOS:
        openings, details = mo["openings"], mo["details"]
        for index in range(REQUESTS_PER_MO):
            title = openings[index % len(openings)]
            body = rng.sample(details, k=2)
            # Half the requests lead with another opening as context (a second reporter's words).
            if index % 2:
                other = openings[(index + 3) % len(openings)]
                body = [f"{other}.", *body]
            requests.append({"title": title, "description": " ".join(body), "mo": mo["key"]})
    rng.shuffle(requests)
    return {
        "about": "Synthetic but realistic request/MO pairs for MO matching (bench/mo_matching.py);"
        " each request is labelled with the one MO it is about.",
        "seed": seed,
        "mos": [
            {
                key: mo[key]
                for key in ("key", "name", "summary", "signals", "behaviours", "entity_types")
            }
            for mo in MOS
        ],
        "requests": requests,
    }


def main() -> None:
    """Write the labelled set."""
    OUT.parent.mkdir(exist_ok=True)
    data = generate()
    OUT.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    print(f"{len(data['requests'])} labelled requests, {len(data['mos'])} MOs -> {OUT}")


if __name__ == "__main__":
    main()
