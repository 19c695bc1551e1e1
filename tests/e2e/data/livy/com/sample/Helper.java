// helper.jar of HDInsight's Livy example body: on the executors' classpath through `jars`.
package com.sample;

public class Helper {
    public static long scale(int x, int factor) {
        return (long) x * factor;
    }
}
