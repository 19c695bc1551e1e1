// A tiny unbounded streaming job for tests/e2e/test_flinkjarjob_real.py: it checks that it got the
// arguments the FlinkJarJob's entrypoint_args say (split as a shell would, passed after "--"),
// then counts slowly forever, so that the test can watch it run, checkpoint, fail and resume.
import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;

public class FlinkTinyJob {
    public static void main(String[] args) throws Exception {
        if (args.length != 2 || !args[0].equals("--tag") || !args[1].equals("hello world")) {
            throw new IllegalArgumentException("unexpected arguments: " + String.join("|", args));
        }
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.fromSequence(0, Long.MAX_VALUE).map(new Slow()).print();
        env.execute("flink-tiny-job");
    }

    static class Slow implements MapFunction<Long, Long> {
        @Override
        public Long map(Long value) throws Exception {
            Thread.sleep(50);
            return value;
        }
    }
}
