// The class of HDInsight's Livy example body (className "com.sample.Job1", file sample.jar), as the
// real tier builds it (tests/e2e/test_livy_real_node.py): it reads `config.xml` (the body's `files`)
// in the executors' working directory and calls Helper from `helper.jar` (the body's `jars`) there.
package com.sample;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.Arrays;

import org.apache.spark.SparkFiles;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.SparkSession;

public class Job1 {
    static int factor() throws Exception {
        String xml = new String(Files.readAllBytes(Paths.get(SparkFiles.get("config.xml"))), StandardCharsets.UTF_8);
        return Integer.parseInt(xml.replaceAll("(?s).*<factor>(\\d+)</factor>.*", "$1"));
    }

    public static void main(String[] args) throws Exception {
        SparkSession spark = SparkSession.builder().appName("Job1").getOrCreate();
        JavaSparkContext sc = JavaSparkContext.fromSparkContext(spark.sparkContext());
        long total = sc.parallelize(Arrays.asList(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 10)
            .map(x -> Helper.scale(x, factor()))
            .reduce(Long::sum);
        System.out.println("Job1 " + String.join(" ", args) + ": " + total);
        spark.stop();
    }
}
