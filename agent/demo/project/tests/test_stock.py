import unittest

from inventory.stock import average_daily_sales, needs_reorder, restock


class StockTest(unittest.TestCase):
    def test_average(self):
        self.assertEqual(average_daily_sales([2, 4, 6]), 4.0)
        self.assertEqual(average_daily_sales([]), 0.0)

    def test_reorder(self):
        self.assertTrue(needs_reorder(5, [2, 2, 2], 3))
        self.assertFalse(needs_reorder(7, [2, 2, 2], 3))

    def test_restock_counts_every_delivery(self):
        self.assertEqual(restock(10, [5, 3]), 18)
        self.assertEqual(restock(0, [4]), 4)


if __name__ == "__main__":
    unittest.main()
