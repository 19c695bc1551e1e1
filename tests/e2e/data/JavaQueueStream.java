// The main class the DLI Flink JAR example names (org.apache.flink.examples.streaming.JavaQueueStream
// in the package javaQueueStream.jar), as its user would write it: the example leaves the jar's code
// to the user. test_flinkjarjob_real_node.py compiles it against flink-dist and uploads the jar to the
// package store under the example's entrypoint, so that the example body runs as pasted.
// It checks the example's arguments ("-windowSize 2000 -rate3", split as a shell would), then proves
// where the dependencies are: a class from each dependency jar (myGroup/test.jar: dli.Test,
// myGroup/test1.jar: dli.Test1) and each dependency file as the class path resource
// userData/<file name>, as DLI documents it. It prints them once in the JobManager (main) and once in
// the TaskManager (the first element): "dli-deps <role> dli.Test=… dli.Test1=… test.csv=… test1.csv=…".
// Then it runs unbounded, so that the job stays RUNNING.
package org.apache.flink.examples.streaming;

import java.io.InputStream;
import java.nio.charset.StandardCharsets;

import org.apache.flink.api.common.functions.RichMapFunction;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;

public class JavaQueueStream {
    public static void main(String[] args) throws Exception {
        if (!String.join("|", args).equals("-windowSize|2000|-rate3")) {
            throw new IllegalArgumentException("unexpected arguments: " + String.join("|", args));
        }
        System.out.println("dli-deps jobmanager " + deps());
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.fromSequence(0, Long.MAX_VALUE).map(new Report()).setParallelism(1).sinkTo(new DiscardingSink<>());
        env.execute("java-queue-stream");
    }

    static String deps() throws Exception {
        StringBuilder out = new StringBuilder();
        for (String name : new String[] {"dli.Test", "dli.Test1"}) {
            Object said = Class.forName(name).getMethod("hello").invoke(null);
            out.append(name).append('=').append(said).append(' ');
        }
        for (String file : new String[] {"test.csv", "test1.csv"}) {
            try (InputStream in = JavaQueueStream.class.getClassLoader().getResourceAsStream("userData/" + file)) {
                String text = in == null ? "MISSING" : new String(in.readAllBytes(), StandardCharsets.UTF_8).trim();
                out.append(file).append('=').append(text.replace('\n', ';')).append(' ');
            }
        }
        return out.toString().trim();
    }

    static class Report extends RichMapFunction<Long, Long> {
        private transient boolean reported;

        @Override
        public Long map(Long value) throws Exception {
            if (!reported) {
                System.out.println("dli-deps taskmanager " + deps());
                reported = true;
            }
            Thread.sleep(100);
            return value;
        }
    }
}
