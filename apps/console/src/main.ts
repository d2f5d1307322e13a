import 'uplot/dist/uPlot.min.css'; import './style.css'; console.log('x');
