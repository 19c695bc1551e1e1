/*
 * lakejob's own SparkPi for lakejob.local/spark: the pyspark package has no examples jar, and DLI and
 * Livy request bodies commonly name this class. Same name and arguments as Spark's example:
 *   spark-submit --class org.apache.spark.examples.SparkPi /opt/spark/examples/jars/spark-examples.jar [slices]
 * It throws slices * 100000 random points at the unit square, counts in parallel those inside the
 * quarter circle and prints "Pi is roughly <value>". images/build.py compiles it against the
 * pyspark jars (javac --release 17) and packs it as spark-examples.jar.
 */
package org.apache.spark.examples;

import java.util.concurrent.ThreadLocalRandom;

import org.apache.spark.api.java.function.FilterFunction;
import org.apache.spark.sql.SparkSession;

public final class SparkPi {
    private static final long POINTS_PER_SLICE = 100_000L;

    private SparkPi() {
    }

    public static void main(String[] args) {
        int slices = args.length > 0 ? Integer.parseInt(args[0]) : 2;
        if (slices < 1) {
            throw new IllegalArgumentException("slices must be at least 1, not " + slices);
        }
        long points = POINTS_PER_SLICE * slices;
        SparkSession spark = SparkSession.builder().appName("Spark Pi").getOrCreate();
        try {
            FilterFunction<Long> inside = i -> {
                double x = ThreadLocalRandom.current().nextDouble(-1.0, 1.0);
                double y = ThreadLocalRandom.current().nextDouble(-1.0, 1.0);
                return x * x + y * y <= 1.0;
            };
            long count = spark.range(0L, points, 1L, slices).filter(inside).count();
            System.out.println("Pi is roughly " + 4.0 * count / points);
        } finally {
            spark.stop();
        }
    }
}
